"""elign.io"""
