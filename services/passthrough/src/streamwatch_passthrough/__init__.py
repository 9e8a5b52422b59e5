"""passthrough"""
