"""Placeholder replaced by the reasoning-gym adapter."""
