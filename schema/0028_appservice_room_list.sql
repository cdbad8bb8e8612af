-- Application service room directories (client-server "Application service room
-- directories"): each service publishes rooms in lists of its own, one per network it
-- bridges (PUT /directory/list/appservice/{networkId}/{roomId}). /publicRooms shows
-- one list with third_party_instance_id "<appservice id>|<network id>", and all of
-- them beside the main list with include_all_networks.
CREATE TABLE appservice_room_list (
    appservice_id TEXT NOT NULL,
    network_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    PRIMARY KEY (appservice_id, network_id, room_id)
);
CREATE INDEX appservice_room_list_room ON appservice_room_list (room_id);
