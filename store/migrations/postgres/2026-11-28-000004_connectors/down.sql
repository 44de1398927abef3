DROP TABLE quarantine;
DROP TABLE connector_offsets;
