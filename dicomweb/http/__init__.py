"""HTTP plumbing shared by the transactions: errors, content negotiation, multipart."""
