"""p2pio (stub)"""
