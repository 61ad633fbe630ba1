-- Overdue referral slips escalate (issue 11 items 4 and 5); see hub/src/cases/escalation.rs.
--
-- slips.next_check_ms: when the escalation scan must look at the slip next, as for cases: the
-- instant it enters its last quarter (deadline_near), then one past its due time (overdue:
-- escalated). NULL once answered (feedback) or once escalated: nothing left to notice. The
-- partial index holds only the slips without feedback still to be noticed, so the scan's query
-- touches only the slips crossing a threshold, however many are open or long overdue.
ALTER TABLE slips ADD COLUMN next_check_ms BIGINT;
UPDATE slips SET next_check_ms = due_ms - (due_ms - issued_ms) / 4 WHERE answered_ms IS NULL;
CREATE INDEX IF NOT EXISTS slips_next_check ON slips (next_check_ms) WHERE next_check_ms IS NOT NULL;

-- A slip's escalation is a row of the same queue with clock = 'slip:<slip id>' and slip_id set
-- (the queue joins the slip for its kind and addressee); NULL for a case's statutory clocks.
ALTER TABLE escalations ADD COLUMN slip_id TEXT;
