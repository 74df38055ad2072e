"""elign.dft"""
