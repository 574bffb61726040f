-- Run once by the postgres image on an empty data directory
-- (/docker-entrypoint-initdb.d), as POSTGRES_USER. One database per service
-- (docs/ARCHITECTURE.md), owned by that user; each service runs its own migrations.
-- Text ordered by byte (collation C), as the local infrastructure creates them
-- (suite/teamnl_suite/infra/postgres.py, DATABASE_COLLATION): every key is text.
CREATE DATABASE teamnl_nlib TEMPLATE template0 LC_COLLATE 'C';
CREATE DATABASE teamnl_tinl TEMPLATE template0 LC_COLLATE 'C';
CREATE DATABASE teamnl_werkplaats TEMPLATE template0 LC_COLLATE 'C';
CREATE DATABASE teamnl_dashboard TEMPLATE template0 LC_COLLATE 'C';
