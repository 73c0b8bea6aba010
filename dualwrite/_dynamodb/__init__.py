"""_dynamodb."""
