"""Static pages served by the server (the browser demo)."""
