mod memory {
    hyperion_store::conformance_tests!(Box::new(hyperion_store::MemoryStore::new()));
}

mod pg;
mod sqlite;
