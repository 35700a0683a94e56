"""Developer tools (synthetic data generators and the like); not part of the installed server package."""
