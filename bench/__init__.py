"""tudui's benchmark (``python -m bench``) and GPU check; not part of the installed package."""
