"""Measurements of the injected noise itself: alpha and T* per noise type, scale and token position."""
