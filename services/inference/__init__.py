"""Inference service: photo in, every face's apparent expression out."""
