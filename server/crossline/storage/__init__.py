"""All SQL lives here. Services open the transactions; these functions take a Connection."""
