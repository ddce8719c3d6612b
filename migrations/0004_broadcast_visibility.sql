-- Past broadcasts the owner edits: a description, and hidden ones
-- (hidden = 1) are seen only by the owner.
ALTER TABLE broadcasts ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE broadcasts ADD COLUMN hidden BIGINT NOT NULL DEFAULT 0;
