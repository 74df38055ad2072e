"""elign.mlff"""
