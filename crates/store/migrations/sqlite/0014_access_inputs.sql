-- Passport store, migration 14: the access decision's inputs, kept with every version, so
-- that a search applies the caller's visibility inside its query (docs/SECURITY.md §5.4)
-- instead of filtering rows after it.
--
-- Per version (and copied onto resource_current for the current one):
--   acc_patient   the child whose record holds it (the first, if several); NULL for none
--   acc_sections  its passport sections as a bit mask (access::SectionSet::bits)
--   acc_labels    its security labels as a bit mask (access::LabelSet::bits)
--   acc_flags     1 = an active MedicationStatement (break-glass shows current medicines),
--                 2 = in further children's records too (listed in access_child),
--                 4 = computed (rows from before this migration are filled in at start-up
--                     from their stored bodies; until then they are visible to nobody
--                     but trusted regional systems)
-- A deletion carries the inputs of the version it deleted: a deletion is shown only to
-- those who could see what it deleted.
ALTER TABLE resource_versions ADD COLUMN acc_patient TEXT;
ALTER TABLE resource_versions ADD COLUMN acc_sections INTEGER NOT NULL DEFAULT 0;
ALTER TABLE resource_versions ADD COLUMN acc_labels INTEGER NOT NULL DEFAULT 0;
ALTER TABLE resource_versions ADD COLUMN acc_flags INTEGER NOT NULL DEFAULT 0;
ALTER TABLE resource_current ADD COLUMN acc_patient TEXT;
ALTER TABLE resource_current ADD COLUMN acc_sections INTEGER NOT NULL DEFAULT 0;
ALTER TABLE resource_current ADD COLUMN acc_labels INTEGER NOT NULL DEFAULT 0;
ALTER TABLE resource_current ADD COLUMN acc_flags INTEGER NOT NULL DEFAULT 0;

-- The further children of a version in several children's records (rare).
CREATE TABLE access_child (
    seq     INTEGER NOT NULL,
    patient TEXT   NOT NULL,
    PRIMARY KEY (seq, patient)
);

-- A child's resources of one type, for searches restricted to the children a caller may see.
CREATE INDEX resource_current_child ON resource_current (acc_patient, resource_type);
-- Rows still to be filled in at start-up.
CREATE INDEX resource_versions_acc_pending ON resource_versions (seq) WHERE acc_flags = 0;
-- Children with a break-glass grant for a practitioner (what a search may reach).
CREATE INDEX break_glass_grants_practitioner ON break_glass_grants (practitioner_id);
