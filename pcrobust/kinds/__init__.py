"""The built-in section kinds (clean, noise, attack), registered through the same hook as a plugin's."""
