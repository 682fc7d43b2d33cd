"""Model files the SDK loads (installed as `harp_track.models`); see README.md beside this file."""
