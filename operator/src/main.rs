fn main() {
    for (_, yaml) in landing_zone_operator::api::crd_files() {
        println!("---\n{yaml}");
    }
}
