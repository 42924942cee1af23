"""homefeed: a home-timeline backend served as a GraphQL API."""
