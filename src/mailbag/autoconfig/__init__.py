"""autoconfig."""
