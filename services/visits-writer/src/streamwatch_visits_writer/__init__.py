"""visits-writer"""
