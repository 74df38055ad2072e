"""elign.data"""
