-- Row IDs handed out by the database (storage/ids.py), so concurrent transactions and
-- several processes sharing this database never take the same one. Each sequence
-- starts after the largest ID already stored.
CREATE SEQUENCE state_group_id_seq;
SELECT setval('state_group_id_seq', COALESCE((SELECT MAX(id) FROM state_groups), 0) + 1, false);
-- queued PDUs and EDUs share one order
CREATE SEQUENCE federation_outbound_id_seq;
SELECT setval('federation_outbound_id_seq', GREATEST(
    COALESCE((SELECT MAX(id) FROM federation_outbound_pdus), 0),
    COALESCE((SELECT MAX(id) FROM federation_outbound_edus), 0)) + 1, false);
