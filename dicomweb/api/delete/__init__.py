"""DELETE of a study, series or instance."""
