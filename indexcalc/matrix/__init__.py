"""Matrix forms: an index expression read off as a matrix expression, where one exists."""
