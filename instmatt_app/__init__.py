"""InstMatt Studio: human instance matting (every person in a photo as a soft, separate layer).

Engine packages (no Qt): ``core`` (equations, document model), ``nets`` (models), ``evaluation``,
``io``; ``gui`` is the PySide6 view; ``cli`` the command line.
"""
__version__ = "0.1.0"
