"""elign.cli"""
