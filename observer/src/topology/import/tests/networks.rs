//! Whole networks: both input forms, seed 004, the writer's round trip.

use super::*;

#[test]
fn seed_004_as_an_arm_export_and_as_az_json_gives_one_topology() {
    let dir = scratch();
    let options = with_tags(dir.path());
    let arm = files("seed-004", &["export.json"]);
    let az = files("seed-004", &["az/vnet.json", "az/nsg.json", "az/ase.json"]);
    let (_, from_arm, arm_text) = round_trip(&arm, dir.path(), &options);
    let (_, from_az, az_text) = round_trip(&az, dir.path(), &options);
    assert_eq!(essence(&from_arm), essence(&from_az));
    assert_eq!(
        bare(&arm_text).replace("export.json", "X"),
        bare(&az_text).replace("vnet.json, nsg.json, ase.json", "X")
    );
}

#[test]
fn seed_004_exported_gives_the_answers_of_its_hand_written_file() {
    let dir = scratch();
    let (_, imported, _) = round_trip(
        &files("seed-004", &["export.json"]),
        dir.path(),
        &with_tags(dir.path()),
    );
    let seed = Topology::load(&lab_topologies().join("seed-004-nsg.toml")).unwrap();
    assert_eq!(imported.environment, seed.environment);
    assert_eq!(
        format!("{:?}", imported.vnet.subnets),
        format!("{:?}", seed.vnet.subnets)
    );
    assert_eq!(format!("{:?}", imported.nsgs), format!("{:?}", seed.nsgs));
    assert_eq!(answers(&imported), answers(&seed));
}
