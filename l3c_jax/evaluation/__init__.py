"""Evaluation: real-coding evaluation of the codec (`evaluate`) and comparison tables."""
