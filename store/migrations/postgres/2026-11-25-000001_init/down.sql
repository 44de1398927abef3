DROP TABLE api_tokens;
DROP TABLE node_meta;
