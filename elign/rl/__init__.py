"""elign.rl"""
