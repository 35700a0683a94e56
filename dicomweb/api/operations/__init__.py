"""Operations: the status of long-running work and the files an import could not take."""
