DROP TABLE registry_config;
DROP TABLE registry_versions;
DROP TABLE registry_schemas;
