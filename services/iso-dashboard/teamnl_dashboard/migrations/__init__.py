"""SQL migrations of the dashboard database, applied in name order by teamnl_shared.db.migrate."""
