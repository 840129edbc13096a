"""Tests of veil.moderator."""
