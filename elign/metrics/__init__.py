"""elign.metrics"""
