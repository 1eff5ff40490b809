"""The journey overlap rollup (dashboards.CustomerJourneys) and, on PostgreSQL, the trigger
on the enrollments that keeps it exact, filled once from the enrollments there now."""

from django.db import migrations, models

# One customer's row recomputed from their enrollments, under a transaction-scoped
# advisory lock per customer: the statements after the lock see what the transaction
# that held it before committed, so concurrent changes to one customer's enrollments
# count one after the other and the row always equals a recount.
CREATE = """
CREATE FUNCTION dashboards_customer_journeys_touch(customer bigint) RETURNS void AS $$
DECLARE
    inside text;
    how_many integer;
BEGIN
    PERFORM pg_advisory_xact_lock(7000008, mod(customer, 2147483648)::integer);
    SELECT string_agg(j::text, ',' ORDER BY j), COUNT(*) INTO inside, how_many
    FROM (SELECT DISTINCT journey_id AS j FROM orchestrator_enrollment
          WHERE customer_id = customer AND state <> 'exited') AS journeys;
    IF how_many >= 2 THEN
        INSERT INTO dashboards_customerjourneys (customer_id, journeys) VALUES (customer, inside)
        ON CONFLICT (customer_id) DO UPDATE SET journeys = EXCLUDED.journeys
        WHERE dashboards_customerjourneys.journeys <> EXCLUDED.journeys;
    ELSE
        DELETE FROM dashboards_customerjourneys WHERE customer_id = customer;
    END IF;
END $$ LANGUAGE plpgsql;

CREATE FUNCTION dashboards_customer_journeys_trigger() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM dashboards_customer_journeys_touch(OLD.customer_id);
    END IF;
    IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.customer_id <> OLD.customer_id) THEN
        PERFORM dashboards_customer_journeys_touch(NEW.customer_id);
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

-- Only what changes the set of journeys a customer is inside: entering, exiting, moving.
CREATE TRIGGER dashboards_customer_journeys_insert AFTER INSERT ON orchestrator_enrollment
    FOR EACH ROW WHEN (NEW.state <> 'exited') EXECUTE FUNCTION dashboards_customer_journeys_trigger();
CREATE TRIGGER dashboards_customer_journeys_delete AFTER DELETE ON orchestrator_enrollment
    FOR EACH ROW WHEN (OLD.state <> 'exited') EXECUTE FUNCTION dashboards_customer_journeys_trigger();
CREATE TRIGGER dashboards_customer_journeys_update AFTER UPDATE OF state, journey_id, customer_id
    ON orchestrator_enrollment FOR EACH ROW
    WHEN ((OLD.state = 'exited') IS DISTINCT FROM (NEW.state = 'exited')
          OR OLD.journey_id <> NEW.journey_id OR OLD.customer_id <> NEW.customer_id)
    EXECUTE FUNCTION dashboards_customer_journeys_trigger();
"""

FILL = """
INSERT INTO dashboards_customerjourneys (customer_id, journeys)
SELECT customer_id, string_agg(journey_id::text, ',' ORDER BY journey_id)
FROM (SELECT DISTINCT customer_id, journey_id FROM orchestrator_enrollment WHERE state <> 'exited') AS inside
GROUP BY customer_id HAVING COUNT(*) >= 2
"""

DROP = """
DROP TRIGGER IF EXISTS dashboards_customer_journeys_insert ON orchestrator_enrollment;
DROP TRIGGER IF EXISTS dashboards_customer_journeys_delete ON orchestrator_enrollment;
DROP TRIGGER IF EXISTS dashboards_customer_journeys_update ON orchestrator_enrollment;
DROP FUNCTION IF EXISTS dashboards_customer_journeys_trigger();
DROP FUNCTION IF EXISTS dashboards_customer_journeys_touch(bigint);
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)
        schema_editor.execute(FILL)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):

    dependencies = [
        ("dashboards", "0001_rollups"),
        ("orchestrator", "0004_journey_engine_runtime"),
    ]

    operations = [
        migrations.CreateModel(
            name="CustomerJourneys",
            fields=[
                ("customer_id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("journeys", models.TextField()),
            ],
        ),
        migrations.RunPython(create_trigger, drop_trigger),
    ]
