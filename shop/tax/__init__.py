"""VAT by destination: the EU rates (data in eu_rates.json) and where a sale is taxed. No Flask."""
