"""profile-publisher"""
