"""Mandarin pinyin CTC recognition and character alignment (QuartzNet, initial/final tokens, blank loss).

Kept light: importing the package imports no torch; see cli.py for the commands.
"""
