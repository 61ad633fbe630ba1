//! The example mapping files in `connectors/README.md` are valid: each parses, uses the
//! placeholder syntax of the database it is written for, and together they map every fact kind
//! of the catalogue for all seven departments.

use std::collections::BTreeSet;

use connectors::adapter::Mapping;
use connectors::adapter::mapping::Placeholders;
use schemas::{Department, FactKind};

const README: &str = include_str!("../README.md");

/// The ```toml blocks that are whole mapping files (they start with `department =`).
fn mapping_blocks() -> Vec<&'static str> {
    README
        .split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .filter(|block| block.starts_with("department = "))
        .collect()
}

#[test]
fn readme_mappings_cover_the_seven_departments() {
    let blocks = mapping_blocks();
    let mut departments = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for block in &blocks {
        let m = Mapping::from_toml(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
        let style = if m.department == Department::Education {
            Placeholders::Question
        } else {
            Placeholders::Dollar
        };
        m.check_placeholders(style)
            .unwrap_or_else(|e| panic!("{}: {e}", m.department));
        departments.insert(m.department);
        kinds.extend(m.facts.keys().copied());
    }
    assert_eq!(departments.len(), 7, "{departments:?}");
    let all: BTreeSet<FactKind> = FactKind::BUILT_IN.iter().copied().collect();
    let missing: Vec<_> = all.difference(&kinds).collect();
    assert!(missing.is_empty(), "README mappings miss {missing:?}");
}

/// The README's example for a department added as data (indented under its list item) is valid
/// once the shipped `departments.toml` is loaded (`connector serve --policies DIR`).
#[test]
fn readme_mapping_for_a_declared_fact_kind_needs_the_policies() {
    let block = README
        .split("  ```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("  ```").next())
        .map(|b| {
            b.lines()
                .map(|l| l.strip_prefix("  ").unwrap_or(l))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .find(|b| b.starts_with("department = \"emergency\""))
        .expect("the emergency example");
    connectors::adapter::load_departments(&policies::PolicyEngine::shipped_dir())
        .expect("shipped departments.toml");
    let m = Mapping::from_toml(&block).unwrap_or_else(|e| panic!("{e}\n{block}"));
    m.check_placeholders(Placeholders::Dollar)
        .expect("placeholders");
    let kind = FactKind::from_code("emergency.disaster_relief_received_12m").expect("declared");
    assert_eq!(m.facts.keys().copied().collect::<Vec<_>>(), vec![kind]);
}
