"""Routers per audience: health, dealer, lender, ops."""
