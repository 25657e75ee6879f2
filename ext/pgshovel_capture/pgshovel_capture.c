/*
 * pgshovel_capture: statement-mode capture in C.
 *
 * One trigger function, pgshovel_capture.capture_statement(), fired AFTER INSERT, UPDATE or
 * DELETE ... FOR EACH STATEMENT with transition tables. It writes the statement's rows as
 * packed events (docs/capture.md, "Packed events"), byte for byte what the generated PL/pgSQL
 * function of statement mode writes, and keeps the same rules of PgQ's insert_event_raw: the
 * current event table read once per transaction into a transaction-local setting after the
 * transaction has its id, one nextval of the queue's event sequence per row, ev_txid the
 * table's default, ev_time now(); a queue with inserts disabled or limited per transaction
 * goes through pgq.insert_event_raw.
 *
 * What the PL/pgSQL function needs a join and a second trigger for, this one reads off the
 * transition tables themselves: PostgreSQL appends an UPDATE's old and new row to its two
 * transition tables in the same call, so the n-th old row and the n-th new row are the same
 * row, whether or not its key changed.
 *
 * The trigger's arguments, all written by pgshovel's `set create` (src/capture/native.ts):
 *   0 queue name            4 ev_extra1 (schema)     8  ev_type ("UPDATE packed")
 *   1 queue id              5 ev_extra2 (table)      9  header line (JSON)
 *   2 event table prefix    6 ev_extra3 (version)    10 old image: "full" or "key"
 *   3 event id sequence     7 ev_extra4 (identity)   11 one character per column: its kind
 *                                                        (b, n, t), upper case for a key column
 *   12.. the monitored columns' names, in the table's order (the header's).
 */
#include "postgres.h"

#include <ctype.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"
#include "utils/varlena.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(capture_statement);

/* Rows per packed event at most: rows are grouped by id / PACK_ROWS (src/capture/packed.ts). */
#define PACK_ROWS 1000

#define FIXED_ARGS 12

typedef struct Column
{
	AttrNumber	attnum;
	bool		key;
	/* 'b', 'n': the type's own output (as ROW(...)::text prints it); 't': its cast to text */
	char		kind;
	bool		byval;
	int16		len;
	FmgrInfo	out;
	/* how the field's text is made (what `::text`, or ROW(...)::text, would print) */
	enum
	{
		TEXT_OUTPUT,			/* the type's output function, out */
		TEXT_CAST,				/* out is the type's cast to text, of cast_nargs arguments */
		TEXT_INT,				/* int2, int4 */
		TEXT_BOOL,
		TEXT_BYTES,				/* text, varchar: the value's bytes */
		TEXT_TRIMMED			/* char(n) as text: its bytes without trailing spaces */
	}			text;
	int			cast_nargs;
	/* `"name":`, the column's member key in a one-row event's JSON */
	char	   *json_key;
} Column;

/* A prepared insert of events into one event table ("0", "1", ...) or through PgQ ("p"). */
typedef struct EventPlan
{
	char		table[16];
	SPIPlanPtr	plan;
	bool		via_pgq;
} EventPlan;

#define MAX_PLANS 16

/*
 * What a trigger's calls share, kept per trigger for the session: its columns resolved, the
 * sequence's oid, its event inserts prepared. Rebuilt at the next call after the table or the
 * sequence changes (a relcache invalidation), which also covers the trigger's own re-creation.
 */
typedef struct CachedTrigger
{
	Oid			tgoid;			/* hash key */
	Oid			relid;
	bool		valid;
	MemoryContext cxt;
	int			ncolumns;
	Column	   *columns;
	bool		old_key;
	Oid			seq;
	char	   *setting;		/* pgshovel.queue_table_<queue id> */
	Datum		queue;
	Datum		type;
	Datum		single_type;	/* the operation alone, a one-row event's ev_type */
	Datum		extras[4];
	int			nplans;
	EventPlan	plans[MAX_PLANS];
} CachedTrigger;

/* One call: the trigger's cached state and the event being built. */
typedef struct Capture
{
	Relation	rel;
	char	  **args;
	CachedTrigger *t;
	EventPlan  *insert;
	StringInfoData data;
	int64		first_id;
	int			rows;
	/* the statement wrote one row: its event is a one-row event, as row mode writes it */
	bool		single;
	MemoryContext event_cxt;
	/* where the call's own state lives (SPI's procedure context) */
	MemoryContext cxt;
} Capture;

static HTAB *triggers = NULL;

static void
invalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS scan;
	CachedTrigger *t;

	hash_seq_init(&scan, triggers);
	while ((t = hash_seq_search(&scan)) != NULL)
		if (relid == InvalidOid || relid == t->relid || relid == t->seq)
			t->valid = false;
}

static void
resolve_columns(CachedTrigger *t, Relation rel, char **args)
{
	TupleDesc	desc = RelationGetDescr(rel);
	const char *kinds = args[11];
	int			i;

	if ((int) strlen(kinds) != t->ncolumns)
		elog(ERROR, "pgshovel_capture: %d column kinds for %d columns", (int) strlen(kinds), t->ncolumns);
	t->columns = palloc0(sizeof(Column) * t->ncolumns);
	for (i = 0; i < t->ncolumns; i++)
	{
		Column	   *col = &t->columns[i];
		const char *name = args[FIXED_ARGS + i];
		Form_pg_attribute att;
		Oid			funcid = InvalidOid;
		Oid			base;
		bool		varlena;

		col->attnum = SPI_fnumber(desc, name);
		if (col->attnum <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("pgshovel_capture: column \"%s\" of \"%s\" is gone", name,
							RelationGetRelationName(rel)),
					 errhint("run pgshovel set update to reinstall the set's triggers")));
		att = TupleDescAttr(desc, col->attnum - 1);
		{
			StringInfoData key;

			initStringInfo(&key);
			escape_json(&key, name);
			appendStringInfoChar(&key, ':');
			col->json_key = key.data;
		}
		col->key = isupper((unsigned char) kinds[i]);
		col->kind = tolower((unsigned char) kinds[i]);
		col->byval = att->attbyval;
		col->len = att->attlen;
		base = getBaseType(att->atttypid);
		if (col->kind == 'n' && (att->atttypid == INT4OID || att->atttypid == INT2OID))
			col->text = TEXT_INT;
		else if (col->kind == 'b' && att->atttypid == BOOLOID)
			col->text = TEXT_BOOL;
		else if (col->kind == 't' && (base == TEXTOID || base == VARCHAROID))
			col->text = TEXT_BYTES;
		/* rtrim of spaces, byte by byte: a space is one byte in every server encoding */
		else if (col->kind == 't' && base == BPCHAROID)
			col->text = TEXT_TRIMMED;
		else if (col->kind == 't' &&
				 find_coercion_pathway(TEXTOID, base, COERCION_EXPLICIT, &funcid) == COERCION_PATH_FUNC)
		{
			col->text = TEXT_CAST;
			fmgr_info_cxt(funcid, &col->out, t->cxt);
			col->cast_nargs = get_func_nargs(funcid);
		}
		else
		{
			col->text = TEXT_OUTPUT;
			getTypeOutputInfo(att->atttypid, &funcid, &varlena);
			fmgr_info_cxt(funcid, &col->out, t->cxt);
		}
	}
}

/* A field's text as record_out writes it: quoted when empty or holding a delimiter, quote, backslash or space. */
static void
append_text(StringInfo buf, const char *text, int len)
{
	const char *end = text + len;
	const char *p;
	bool		quote = len == 0;

	for (p = text; p < end && !quote; p++)
		quote = *p == '"' || *p == '\\' || *p == '(' || *p == ')' || *p == ',' ||
			isspace((unsigned char) *p);
	if (!quote)
	{
		appendBinaryStringInfo(buf, text, len);
		return;
	}
	appendStringInfoCharMacro(buf, '"');
	for (p = text; p < end; p++)
	{
		if (*p == '"' || *p == '\\')
			appendStringInfoCharMacro(buf, *p);
		appendStringInfoCharMacro(buf, *p);
	}
	appendStringInfoCharMacro(buf, '"');
}

/*
 * A 't' field's text as `::text` makes it, at *text for *len bytes (not always terminated):
 * text and varchar print their bytes, char(n) cast to text drops its trailing spaces (a space
 * is one byte in every server encoding), other types go through their cast or output.
 */
static void
field_text(Column *col, Datum value, const char **chars, int *len)
{
	char	   *out;

	if (col->text == TEXT_BYTES || col->text == TEXT_TRIMMED)
	{
		text	   *t = DatumGetTextPP(value);
		const char *data = VARDATA_ANY(t);
		int			n = VARSIZE_ANY_EXHDR(t);

		if (col->text == TEXT_TRIMMED)
			while (n > 0 && data[n - 1] == ' ')
				n--;
		*chars = data;
		*len = n;
		return;
	}
	if (col->text == TEXT_CAST)
		out = col->cast_nargs == 3
			? TextDatumGetCString(FunctionCall3(&col->out, value, Int32GetDatum(-1), BoolGetDatum(true)))
			: TextDatumGetCString(FunctionCall1(&col->out, value));
	else
		out = OutputFunctionCall(&col->out, value);
	*chars = out;
	*len = strlen(out);
}

/* int2 and int4 as their output prints them, into digits[12]; returns the length. */
static int
int_text(Column *col, Datum value, char *digits)
{
	return pg_ltoa(col->len == 2 ? DatumGetInt16(value) : DatumGetInt32(value), digits);
}

/* A field of a packed record: empty for NULL, else its text as record_out quotes it. */
static void
append_field(StringInfo buf, Column *col, Datum value, bool isnull)
{
	const char *chars;
	int			len;
	char		digits[12];

	if (isnull)
		return;
	if (col->text == TEXT_INT)
		/* digits never need quotes */
		appendBinaryStringInfo(buf, digits, int_text(col, value, digits));
	else if (col->text == TEXT_BOOL)
		appendStringInfoCharMacro(buf, DatumGetBool(value) ? 't' : 'f');
	else
	{
		field_text(col, value, &chars, &len);
		append_text(buf, chars, len);
	}
}

/*
 * A field's JSON value in a one-row event, as row mode's function writes it: null, an int2 or
 * int4 as a number, a bool as true or false, any other type's text as a JSON string (to_json's
 * escaping).
 */
static void
append_json_value(StringInfo buf, Column *col, Datum value, bool isnull)
{
	const char *chars;
	int			len;
	char		digits[12];

	if (isnull)
		appendStringInfoString(buf, "null");
	else if (col->text == TEXT_INT)
		appendBinaryStringInfo(buf, digits, int_text(col, value, digits));
	else if (col->text == TEXT_BOOL)
		appendStringInfoString(buf, DatumGetBool(value) ? "true" : "false");
	else
	{
		field_text(col, value, &chars, &len);
		/* a text or char(n) value's bytes are not terminated: copied first */
		escape_json(buf, col->text == TEXT_BYTES || col->text == TEXT_TRIMMED ? pnstrdup(chars, len) : chars);
	}
}

/*
 * Where this transaction writes its events: the queue's current table number, or "p" when
 * PgQ must take each event itself. Read at the transaction's first event, once it has its id,
 * and kept in the transaction-local setting the PL/pgSQL capture functions share.
 */
static char *
queue_table(const char *name, const char *queue_id)
{
	const char *known;
	Oid			types[1] = {INT4OID};
	Datum		values[1];
	char	   *table;

	known = GetConfigOption(name, true, false);
	if (known != NULL && known[0] != '\0')
		return pstrdup(known);
	/* PgQ's readers look for the transaction's events in the table read here only if its id precedes the next rotation's step 2 */
	(void) GetTopTransactionId();
	values[0] = Int32GetDatum(pg_strtoint32(queue_id));
	if (SPI_execute_with_args("SELECT CASE WHEN queue_disable_insert OR queue_per_tx_limit IS NOT NULL"
							  " THEN 'p' ELSE queue_cur_table::pg_catalog.text END"
							  " FROM pgq.queue WHERE queue_id = $1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "pgshovel_capture: could not read pgq.queue");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pgshovel_capture: PgQ queue %s does not exist", queue_id),
				 errhint("run pgshovel set update to reinstall the set's triggers")));
	table = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	(void) set_config_option(name, table, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	return table;
}

/* The cached trigger of this call, (re)built when missing or invalidated. */
static CachedTrigger *
cached_trigger(TriggerData *trigger)
{
	Trigger    *tg = trigger->tg_trigger;
	CachedTrigger *t;
	bool		found;
	MemoryContext caller;
	int			i;

	if (triggers == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(CachedTrigger);
		triggers = hash_create("pgshovel_capture triggers", 16, &ctl, HASH_ELEM | HASH_BLOBS);
		CacheRegisterRelcacheCallback(invalidate, (Datum) 0);
	}
	t = hash_search(triggers, &tg->tgoid, HASH_ENTER, &found);
	if (found && t->valid)
		return t;
	if (found)
	{
		for (i = 0; i < t->nplans; i++)
			SPI_freeplan(t->plans[i].plan);
		MemoryContextDelete(t->cxt);
	}
	/* an error below leaves the entry invalid, with nothing to free */
	t->valid = false;
	t->nplans = 0;
	t->cxt = AllocSetContextCreate(CacheMemoryContext, "pgshovel_capture trigger", ALLOCSET_SMALL_SIZES);
	caller = MemoryContextSwitchTo(t->cxt);
	t->relid = RelationGetRelid(trigger->tg_relation);
	t->ncolumns = tg->tgnargs - FIXED_ARGS;
	t->old_key = strcmp(tg->tgargs[10], "key") == 0;
	resolve_columns(t, trigger->tg_relation, tg->tgargs);
	t->seq = RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(tg->tgargs[3])), NoLock, false);
	t->setting = psprintf("pgshovel.queue_table_%s", tg->tgargs[1]);
	t->queue = CStringGetTextDatum(tg->tgargs[0]);
	t->type = CStringGetTextDatum(tg->tgargs[8]);
	t->single_type = CStringGetTextDatum(pnstrdup(tg->tgargs[8], strcspn(tg->tgargs[8], " ")));
	for (i = 0; i < 4; i++)
		t->extras[i] = CStringGetTextDatum(tg->tgargs[4 + i]);
	MemoryContextSwitchTo(caller);
	t->valid = true;
	return t;
}

/* The insert of this transaction's events: into its event table, or through PgQ. */
static EventPlan *
event_plan(Capture *c)
{
	CachedTrigger *t = c->t;
	char	   *table = queue_table(t->setting, c->args[1]);
	Oid			types[8] = {TEXTOID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	EventPlan  *plan;
	int			i;

	for (i = 0; i < t->nplans; i++)
		if (strcmp(t->plans[i].table, table) == 0)
			return &t->plans[i];
	if (t->nplans == MAX_PLANS || strlen(table) >= sizeof(plan->table))
		elog(ERROR, "pgshovel_capture: unexpected event table %s", table);
	plan = &t->plans[t->nplans];
	plan->via_pgq = strcmp(table, "p") == 0;
	if (plan->via_pgq)
		plan->plan = SPI_prepare("SELECT pgq.insert_event_raw($1, $2, pg_catalog.now(), NULL, NULL, $3, $4, $5, $6, $7, $8)",
								 8, types);
	else
	{
		List	   *names = stringToQualifiedNameList(psprintf("%s_%s", c->args[2], table));
		RangeVar   *target = makeRangeVarFromNameList(names);

		plan->plan = SPI_prepare(psprintf("INSERT INTO %s (ev_id, ev_time, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4)"
										  " VALUES ($2, pg_catalog.now(), $3, $4, $5, $6, $7, $8)",
										  quote_qualified_identifier(target->schemaname, target->relname)),
								 8, types);
	}
	if (plan->plan == NULL)
		elog(ERROR, "pgshovel_capture: could not prepare the event insert: %s", SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan->plan) != 0)
		elog(ERROR, "pgshovel_capture: could not keep the event insert");
	strlcpy(plan->table, table, sizeof(plan->table));
	t->nplans++;
	return plan;
}

static void
flush_event(Capture *c)
{
	Datum		values[8];
	int			rc;

	MemoryContext caller;

	if (c->rows == 0)
		return;
	/* the event's text, built and copied in the event's context, is freed once inserted */
	caller = MemoryContextSwitchTo(c->event_cxt);
	values[0] = c->t->queue;
	values[1] = Int64GetDatum(c->first_id);
	values[2] = c->single ? c->t->single_type : c->t->type;
	values[3] = PointerGetDatum(cstring_to_text_with_len(c->data.data, c->data.len));
	memcpy(&values[4], c->t->extras, sizeof(c->t->extras));
	rc = SPI_execute_plan(c->insert->plan, values, NULL, false, 0);
	if (rc != (c->insert->via_pgq ? SPI_OK_SELECT : SPI_OK_INSERT))
		elog(ERROR, "pgshovel_capture: could not insert an event: %s", SPI_result_code_string(rc));
	c->rows = 0;
	MemoryContextSwitchTo(caller);
	MemoryContextReset(c->event_cxt);
}

/* Starts a row's line: takes its event id, and starts a new event when the id leaves the current one's group. */
static void
begin_row(Capture *c)
{
	int64		id = nextval_internal(c->t->seq, false);
	MemoryContext old;

	if (c->rows > 0 && id / PACK_ROWS != c->first_id / PACK_ROWS)
		flush_event(c);
	if (c->rows == 0)
	{
		old = MemoryContextSwitchTo(c->event_cxt);
		initStringInfo(&c->data);
		MemoryContextSwitchTo(old);
		appendStringInfoString(&c->data, c->args[9]);
		c->first_id = id;
	}
	appendStringInfo(&c->data, "\n" INT64_FORMAT " (", id);
	c->rows++;
}

static void
append_image(Capture *c, TupleTableSlot *slot, bool keys_only, bool *first)
{
	int			i;

	for (i = 0; i < c->t->ncolumns; i++)
	{
		Column	   *col = &c->t->columns[i];
		bool		isnull;
		Datum		value;

		if (keys_only && !col->key)
			continue;
		if (!*first)
			appendStringInfoCharMacro(&c->data, ',');
		*first = false;
		value = slot_getattr(slot, col->attnum, &isnull);
		append_field(&c->data, col, value, isnull);
	}
}

static bool
same_image(Column *col, TupleTableSlot *old, TupleTableSlot *new)
{
	bool		old_null,
				new_null;
	Datum		a = slot_getattr(old, col->attnum, &old_null);
	Datum		b = slot_getattr(new, col->attnum, &new_null);

	if (old_null || new_null)
		return old_null && new_null;
	return datum_image_eq(a, b, col->byval, col->len);
}

/*
 * One image as a JSON object, the columns in the table's order: every column, the identity
 * only (keys_only), or those a mask marks.
 */
static void
append_json_image(Capture *c, TupleTableSlot *slot, bool keys_only, const char *mask)
{
	bool		first = true;
	int			i;

	appendStringInfoCharMacro(&c->data, '{');
	for (i = 0; i < c->t->ncolumns; i++)
	{
		Column	   *col = &c->t->columns[i];
		bool		isnull;
		Datum		value;

		if ((keys_only && !col->key) || (mask != NULL && mask[i] != '1'))
			continue;
		if (!first)
			appendStringInfoCharMacro(&c->data, ',');
		first = false;
		appendStringInfoString(&c->data, col->json_key);
		value = slot_getattr(slot, col->attnum, &isnull);
		append_json_value(&c->data, col, value, isnull);
	}
	appendStringInfoCharMacro(&c->data, '}');
}

/*
 * The one event of a statement that wrote one row: `{"old" : …,"new":…}` under the operation's
 * own ev_type, byte for byte what row mode's function writes (docs/capture.md), so that it is
 * no larger than row mode's and the relay copies it into a JSON stream as it is.
 */
static void
single_event(Capture *c, TupleTableSlot *old, TupleTableSlot *new, bool delete, const char *mask)
{
	MemoryContext caller = MemoryContextSwitchTo(c->event_cxt);

	initStringInfo(&c->data);
	MemoryContextSwitchTo(caller);
	c->first_id = nextval_internal(c->t->seq, false);
	c->rows = 1;
	appendStringInfoString(&c->data, "{\"old\" : ");
	if (old)
		append_json_image(c, old, delete && c->t->old_key, new && c->t->old_key ? mask : NULL);
	else
		appendStringInfoString(&c->data, "null");
	appendStringInfoString(&c->data, ",\"new\":");
	if (new)
		append_json_image(c, new, false, NULL);
	else
		appendStringInfoString(&c->data, "null");
	appendStringInfoCharMacro(&c->data, '}');
}

/* A transition table read from its start through a read pointer of this function's own. */
static void
rewind_store(Tuplestorestate *store)
{
	int			ptr = tuplestore_alloc_read_pointer(store, EXEC_FLAG_REWIND);

	tuplestore_select_read_pointer(store, ptr);
	tuplestore_rescan(store);
}

static void
capture_rows(Capture *c, TriggerData *trigger)
{
	TupleDesc	desc = RelationGetDescr(c->rel);
	bool		update = TRIGGER_FIRED_BY_UPDATE(trigger->tg_event);
	bool		delete = TRIGGER_FIRED_BY_DELETE(trigger->tg_event);
	Tuplestorestate *olds = update || delete ? trigger->tg_oldtable : NULL;
	Tuplestorestate *news = delete ? NULL : trigger->tg_newtable;
	TupleTableSlot *old = olds ? MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple) : NULL;
	TupleTableSlot *new = news ? MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple) : NULL;
	char	   *mask = palloc(c->t->ncolumns + 1);
	MemoryContext row_cxt = AllocSetContextCreate(CurrentMemoryContext, "pgshovel_capture row", ALLOCSET_DEFAULT_SIZES);

	if ((update || delete) && olds == NULL)
		elog(ERROR, "pgshovel_capture: the trigger has no OLD TABLE");
	if (!delete && news == NULL)
		elog(ERROR, "pgshovel_capture: the trigger has no NEW TABLE");
	if (update && tuplestore_tuple_count(olds) != tuplestore_tuple_count(news))
		elog(ERROR, "pgshovel_capture: an UPDATE's transition tables hold " INT64_FORMAT " and " INT64_FORMAT " rows",
			 tuplestore_tuple_count(olds), tuplestore_tuple_count(news));
	c->single = tuplestore_tuple_count(olds ? olds : news) == 1;
	if (olds)
		rewind_store(olds);
	if (news)
		rewind_store(news);
	mask[c->t->ncolumns] = '\0';
	for (;;)
	{
		bool		first = true;
		bool		changed = false;
		int			i;

		/*
		 * A transition table spilled to disk reads each tuple into the current context, and the
		 * slot frees it when the next is stored: read them outside the per-row context.
		 */
		MemoryContextSwitchTo(c->cxt);
		if (olds && !tuplestore_gettupleslot(olds, true, false, old))
			break;
		if (news && !tuplestore_gettupleslot(news, true, false, new))
			break;
		CHECK_FOR_INTERRUPTS();
		/* what a row's fields allocate (detoasted values, output text) lives until the next row */
		MemoryContextReset(row_cxt);
		MemoryContextSwitchTo(row_cxt);
		if (update)
		{
			for (i = 0; i < c->t->ncolumns; i++)
			{
				bool		same = same_image(&c->t->columns[i], old, new);

				mask[i] = c->t->columns[i].key || !same ? '1' : '0';
				changed |= !same;
			}
			if (!changed)
				continue;
		}
		if (c->insert == NULL)
		{
			MemoryContextSwitchTo(c->cxt);
			c->insert = event_plan(c);
		}
		if (c->single)
		{
			MemoryContextSwitchTo(row_cxt);
			single_event(c, old, new, delete, mask);
			continue;
		}
		begin_row(c);
		/* SPI leaves its own context current after a call */
		MemoryContextSwitchTo(row_cxt);
		if (update && c->t->old_key)
		{
			/* the presence mask, then the old fields it marks (NULL elsewhere), then the new row */
			appendStringInfoString(&c->data, mask);
			for (i = 0; i < c->t->ncolumns; i++)
			{
				bool		isnull;
				Datum		value;

				appendStringInfoCharMacro(&c->data, ',');
				if (mask[i] != '1')
					continue;
				value = slot_getattr(old, c->t->columns[i].attnum, &isnull);
				append_field(&c->data, &c->t->columns[i], value, isnull);
			}
			first = false;
		}
		else if (old)
			append_image(c, old, delete && c->t->old_key, &first);
		if (new)
			append_image(c, new, false, &first);
		appendStringInfoCharMacro(&c->data, ')');
	}
	MemoryContextSwitchTo(c->cxt);
	flush_event(c);
	if (old)
		ExecDropSingleTupleTableSlot(old);
	if (new)
		ExecDropSingleTupleTableSlot(new);
}

Datum
capture_statement(PG_FUNCTION_ARGS)
{
	TriggerData *trigger = (TriggerData *) fcinfo->context;
	Capture		c;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("pgshovel_capture.capture_statement() runs only as a trigger")));
	if (!TRIGGER_FIRED_AFTER(trigger->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(trigger->tg_event) ||
		TRIGGER_FIRED_BY_TRUNCATE(trigger->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("pgshovel_capture.capture_statement() runs only AFTER INSERT, UPDATE or DELETE ... FOR EACH STATEMENT")));
	if (trigger->tg_trigger->tgnargs <= FIXED_ARGS)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("pgshovel_capture.capture_statement() needs %d arguments and columns, got %d",
						FIXED_ARGS, trigger->tg_trigger->tgnargs),
				 errhint("its triggers are installed by pgshovel set create and set update")));

	memset(&c, 0, sizeof(c));
	c.rel = trigger->tg_relation;
	c.args = trigger->tg_trigger->tgargs;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "pgshovel_capture: SPI_connect failed");
	c.cxt = CurrentMemoryContext;
	c.event_cxt = AllocSetContextCreate(CurrentMemoryContext, "pgshovel_capture event", ALLOCSET_DEFAULT_SIZES);
	c.t = cached_trigger(trigger);
	capture_rows(&c, trigger);
	SPI_finish();
	return PointerGetDatum(NULL);
}
