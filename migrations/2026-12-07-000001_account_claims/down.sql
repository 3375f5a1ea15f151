DROP TABLE account_claims;
