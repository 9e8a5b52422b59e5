"""observer"""
