-- Run once by the postgres image on an empty data directory
-- (/docker-entrypoint-initdb.d), as POSTGRES_USER. One database per service
-- (docs/ARCHITECTURE.md), owned by that user; each service runs its own migrations.
CREATE DATABASE teamnl_nlib;
CREATE DATABASE teamnl_tinl;
CREATE DATABASE teamnl_werkplaats;
CREATE DATABASE teamnl_dashboard;
