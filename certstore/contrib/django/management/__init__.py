"""Django management commands of certstore (discovered by Django through the app)."""
