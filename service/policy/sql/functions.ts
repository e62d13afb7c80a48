// Which functions a `read` grant may call, which have side effects, and which settings are safe to change.
//
// Read grants run only functions proven harmless: an explicit allow-list of PostgreSQL built-ins (plus a
// few families by prefix, minus named exceptions). A name is treated as the built-in only when it is
// unqualified or qualified with pg_catalog; `public.lower(...)` is a user function and cannot be proven
// read-only. Quoted names are compared exactly as the parser returns them ("LOWER" is not lower).
//
// Settings: SET names are always constants, so changes are judged by a deny-list of settings that could
// lift the upstream read-only guard, change identity, make the server parse SQL differently from our
// parser (client_encoding, standard_conforming_strings), or need superuser-level trust. set_config()
// follows the same rules but only when its first argument is a string constant.

export type FunctionClass =
  /** provably harmless: allowed under read */
  | { kind: 'read' }
  /** side effects or cannot be proven read-only: denied under read, allowed under write */
  | { kind: 'write'; reason: string }
  /** server administration: needs admin */
  | { kind: 'admin'; reason: string }
  /** server file/program access: denied at every level */
  | { kind: 'forbidden'; reason: string };

const words = (s: string): string[] => s.split(/\s+/).filter(Boolean);

/** Built-ins a read grant may call (pure, stable, or catalog readers). */
const READ_SAFE = new Set<string>(
  words(`
  abs cbrt ceil ceiling degrees div exp factorial floor gcd lcm ln log log10 min_scale mod pi power radians
  round scale sign sqrt trim_scale trunc width_bucket random random_normal setseed erf erfc
  acos acosd asin asind atan atand atan2 atan2d cos cosd cot cotd sin sind tan tand sinh cosh tanh asinh acosh atanh
  numeric_inc int4 int8 int2 float4 float8 numeric text varchar bpchar bool char name oid
  ascii bit_length btrim char_length character_length chr concat concat_ws convert convert_from convert_to
  decode encode format initcap left length lower lpad ltrim md5 normalize octet_length overlay parse_ident
  position quote_ident quote_literal quote_nullable repeat replace reverse right rpad rtrim split_part
  starts_with string_to_array string_to_table strpos substr substring to_ascii to_hex to_bin to_oct
  translate unistr upper casefold btrim sha224 sha256 sha384 sha512 crc32 crc32c get_bit get_byte set_bit set_byte
  bit_count bit_length reverse ltrim rtrim uuid_extract_timestamp uuid_extract_version gen_random_uuid uuidv4 uuidv7
  like_escape similar_escape similar_to_escape textlen textcat
  regexp_count regexp_instr regexp_like regexp_match regexp_matches regexp_replace regexp_split_to_array
  regexp_split_to_table regexp_substr
  age clock_timestamp current_date current_time current_timestamp date_add date_bin date_part date_subtract
  date_trunc extract isfinite justify_days justify_hours justify_interval localtime localtimestamp
  make_date make_interval make_time make_timestamp make_timestamptz now statement_timestamp timeofday
  transaction_timestamp to_timestamp to_char to_date to_number timezone overlaps
  array_agg array_append array_cat array_dims array_fill array_length array_lower array_ndims array_position
  array_positions array_prepend array_remove array_replace array_reverse array_sample array_shuffle array_sort
  array_to_string array_upper cardinality trim_array unnest generate_series generate_subscripts
  avg bit_and bit_or bit_xor bool_and bool_or count every max min sum string_agg json_agg jsonb_agg
  json_object_agg jsonb_object_agg xmlagg any_value range_agg range_intersect_agg
  corr covar_pop covar_samp regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx regr_sxy
  regr_syy stddev stddev_pop stddev_samp variance var_pop var_samp mode percentile_cont percentile_disc
  rank dense_rank percent_rank cume_dist row_number ntile lag lead first_value last_value nth_value
  to_json to_jsonb array_to_json row_to_json json_build_array jsonb_build_array json_build_object
  jsonb_build_object json_object jsonb_object json_array_length jsonb_array_length json_each jsonb_each
  json_each_text jsonb_each_text json_extract_path jsonb_extract_path json_extract_path_text
  jsonb_extract_path_text json_object_keys jsonb_object_keys json_populate_record jsonb_populate_record
  json_populate_recordset jsonb_populate_recordset json_to_record jsonb_to_record json_to_recordset
  jsonb_to_recordset json_strip_nulls jsonb_strip_nulls jsonb_set jsonb_set_lax jsonb_insert jsonb_pretty
  json_typeof jsonb_typeof json_array_elements jsonb_array_elements json_array_elements_text
  jsonb_array_elements_text jsonb_path_exists jsonb_path_match jsonb_path_query jsonb_path_query_array
  jsonb_path_query_first jsonb_path_exists_tz jsonb_path_match_tz jsonb_path_query_tz
  jsonb_path_query_array_tz jsonb_path_query_first_tz jsonb_concat jsonb_contains jsonb_exists jsonb_delete
  jsonb_delete_path jsonb_populate_record_valid json_scalar json_serialize to_tsvector to_tsquery plainto_tsquery
  phraseto_tsquery websearch_to_tsquery ts_rank ts_rank_cd ts_headline ts_lexize ts_parse ts_token_type
  ts_debug setweight strip numnode querytree tsvector_to_array array_to_tsvector ts_delete ts_filter
  length get_current_ts_config
  xmlcomment xmlconcat xmlelement xmlforest xmlpi xmlroot xmlexists xml_is_well_formed
  xml_is_well_formed_document xml_is_well_formed_content xpath xpath_exists xmlparse xmlserialize xmltext
  host hostmask masklen netmask network set_masklen abbrev broadcast family inet_merge inet_same_family
  macaddr8_set7bit inet_client_addr inet_client_port inet_server_addr inet_server_port
  area center diagonal diameter height isclosed isopen npoints pclose popen radius slope width box circle
  line lseg path point polygon bound_box
  lower_inc upper_inc lower_inf upper_inf isempty range_merge multirange int4range int8range numrange
  tsrange tstzrange daterange int4multirange int8multirange nummultirange tsmultirange tstzmultirange
  datemultirange
  enum_first enum_last enum_range num_nulls num_nonnulls nullif coalesce greatest least
  current_catalog current_database current_query current_role current_schema current_schemas current_user
  session_user system_user user version pg_backend_pid pg_blocking_pids pg_safe_snapshot_blocking_pids
  pg_conf_load_time pg_postmaster_start_time pg_current_logfile_format pg_is_in_recovery
  pg_is_wal_replay_paused pg_get_wal_replay_pause_state pg_last_xact_replay_timestamp pg_last_wal_receive_lsn
  pg_last_wal_replay_lsn pg_current_wal_lsn pg_current_wal_insert_lsn pg_current_wal_flush_lsn
  pg_walfile_name pg_walfile_name_offset pg_wal_lsn_diff pg_split_walfile_name pg_trigger_depth
  pg_jit_available pg_listening_channels pg_notification_queue_usage pg_my_temp_schema pg_is_other_temp_schema
  pg_typeof pg_collation_for pg_column_size pg_column_compression pg_column_toast_chunk_id pg_database_size
  pg_indexes_size pg_relation_size pg_size_bytes pg_size_pretty pg_table_size pg_tablespace_size
  pg_total_relation_size pg_relation_filenode pg_relation_filepath pg_filenode_relation pg_partition_tree
  pg_partition_ancestors pg_partition_root pg_char_to_encoding pg_encoding_to_char pg_encoding_max_length
  pg_client_encoding pg_tablespace_location pg_tablespace_databases pg_options_to_table pg_settings_get_flags
  pg_describe_object pg_identify_object pg_identify_object_as_address pg_get_object_address
  pg_index_column_has_property pg_index_has_property pg_indexam_has_property pg_indexam_progress_phasename
  pg_input_is_valid pg_input_error_info pg_basetype pg_get_catalog_foreign_keys pg_get_keywords
  pg_get_acl pg_has_role pg_show_all_settings pg_show_all_file_settings pg_hba_file_rules pg_ident_file_mappings
  pg_show_replication_origin_status pg_available_extensions pg_available_extension_versions
  pg_extension_config_dump pg_extension_update_paths pg_cursor pg_prepared_statement pg_prepared_xact
  pg_lock_status pg_timezone_names pg_timezone_abbrevs pg_config pg_control_checkpoint pg_control_system
  pg_control_init pg_control_recovery pg_visible_in_snapshot pg_current_snapshot pg_snapshot_xip
  pg_snapshot_xmax pg_snapshot_xmin pg_xact_status pg_xact_commit_timestamp pg_xact_commit_timestamp_origin
  pg_last_committed_xact pg_current_xact_id_if_assigned pg_export_snapshot pg_get_wal_resource_managers
  pg_get_backend_memory_contexts pg_get_shmem_allocations pg_get_multixact_members
  pg_get_replication_slots pg_get_loaded_modules pg_relation_is_publishable pg_relation_is_updatable
  pg_column_is_updatable pg_sequence_parameters pg_sequence_last_value pg_collation_actual_version
  pg_database_collation_actual_version pg_mcv_list_items pg_opfamily_is_visible pg_statistics_obj_is_visible
  txid_current_snapshot txid_snapshot_xip txid_snapshot_xmax txid_snapshot_xmin txid_visible_in_snapshot
  txid_status txid_current_if_assigned
  obj_description col_description shobj_description format_type to_regclass to_regcollation to_regnamespace
  to_regoper to_regoperator to_regproc to_regprocedure to_regrole to_regtype to_regtypemod
  current_setting acldefault aclexplode aclitemeq aclcontains makeaclitem
  array_in array_out regclassin regclassout regtypein textin textout boolin boolout int4in int4out
  row_security_active lo_get lo_open lo_close loread lo_lseek lo_lseek64 lo_tell lo_tell64
  bernoulli system system_rows system_time
  `),
);

/** pg_-owned families allowed by shape (catalog readers). Exact names above cover everything else, so a
 *  user function that merely starts like a built-in family (json_evil) is not trusted. */
function readSafeFamily(name: string): boolean {
  return (
    name.startsWith('pg_get_') ||
    name.startsWith('pg_stat_get_') ||
    (name.startsWith('has_') && name.endsWith('_privilege')) ||
    (name.startsWith('pg_') && name.endsWith('_is_visible'))
  );
}

const forbid = (reason: string): FunctionClass => ({ kind: 'forbidden', reason });
const admin = (reason: string): FunctionClass => ({ kind: 'admin', reason });
const write = (reason: string): FunctionClass => ({ kind: 'write', reason });

/** Functions with side effects, named in every denial. Takes precedence over the allow-list. */
const SIDE_EFFECTS = new Map<string, FunctionClass>();
const add = (names: string, cls: FunctionClass): void => {
  for (const n of words(names)) SIDE_EFFECTS.set(n, cls);
};
add(
  'pg_read_file pg_read_binary_file pg_stat_file pg_file_write pg_file_rename pg_file_unlink pg_file_sync pg_logdir_ls',
  forbid('reads or writes files on the database server'),
);
add('lo_import lo_export', forbid('reads or writes files on the database server'));
add(
  'pg_ls_dir pg_ls_logdir pg_ls_waldir pg_ls_tmpdir pg_ls_archive_statusdir pg_ls_logicalsnapdir pg_ls_logicalmapdir pg_ls_replslotdir pg_ls_summariesdir pg_current_logfile',
  admin('lists files on the database server'),
);
add('pg_terminate_backend pg_cancel_backend', admin('signals other server processes'));
add(
  'pg_reload_conf pg_rotate_logfile pg_switch_wal pg_promote pg_create_restore_point pg_backup_start pg_backup_stop pg_start_backup pg_stop_backup pg_wal_replay_pause pg_wal_replay_resume pg_log_backend_memory_contexts pg_import_system_collations pg_log_standby_snapshot pg_sync_replication_slots',
  admin('administers the server'),
);
add(
  'pg_create_physical_replication_slot pg_create_logical_replication_slot pg_drop_replication_slot pg_copy_physical_replication_slot pg_copy_logical_replication_slot pg_replication_slot_advance pg_logical_slot_get_changes pg_logical_slot_peek_changes pg_logical_slot_get_binary_changes pg_logical_slot_peek_binary_changes pg_logical_emit_message pg_replication_origin_create pg_replication_origin_drop pg_replication_origin_session_setup pg_replication_origin_session_reset pg_replication_origin_advance pg_replication_origin_xact_setup pg_replication_origin_xact_reset pg_replication_origin_session_progress pg_replication_origin_progress pg_replication_origin_oid pg_replication_origin_session_is_setup',
  admin('manages replication'),
);
add(
  'pg_stat_reset pg_stat_reset_shared pg_stat_reset_single_table_counters pg_stat_reset_single_function_counters pg_stat_reset_slru pg_stat_reset_replication_slot pg_stat_reset_subscription_stats pg_stat_reset_backend_stats pg_stat_statements_reset',
  admin('resets server statistics'),
);
add('nextval setval', write('changes a sequence'));
// Reading a large object is a read (lo_open for writing fails in the read-only transaction).
add(
  'lo_creat lo_create lo_unlink lo_put lo_from_bytea lo_truncate lo_truncate64 lowrite',
  write('writes large objects'),
);
add(
  'pg_advisory_lock pg_advisory_lock_shared pg_advisory_xact_lock pg_advisory_xact_lock_shared pg_try_advisory_lock pg_try_advisory_lock_shared pg_try_advisory_xact_lock pg_try_advisory_xact_lock_shared pg_advisory_unlock pg_advisory_unlock_shared pg_advisory_unlock_all',
  write('takes or releases advisory locks'),
);
add('pg_notify', write('sends a notification to other sessions'));
add('txid_current pg_current_xact_id', write('assigns a transaction id'));
add('pg_sleep pg_sleep_for pg_sleep_until', write('holds a connection and a snapshot (denial of service)'));
add(
  'dblink dblink_exec dblink_connect dblink_connect_u dblink_disconnect dblink_open dblink_fetch dblink_close dblink_send_query dblink_get_result dblink_get_connections dblink_is_busy dblink_cancel_query dblink_error_message dblink_get_notify dblink_build_sql_insert dblink_build_sql_update dblink_build_sql_delete',
  write('runs SQL over another database connection'),
);
add(
  'query_to_xml query_to_xml_and_xmlschema query_to_xmlschema cursor_to_xml cursor_to_xmlschema ts_stat ts_rewrite',
  write('runs SQL given as text, which cannot be checked'),
);
add(
  'table_to_xml table_to_xml_and_xmlschema table_to_xmlschema schema_to_xml schema_to_xml_and_xmlschema schema_to_xmlschema database_to_xml database_to_xml_and_xmlschema database_to_xmlschema',
  write('reads whole tables by name, out of sight of the SQL policy'),
);

/** Functions that read table data by name or SQL text (bypass column masks and deny.table rules). */
const MASK_BYPASS = new Set(
  words(`dblink dblink_exec dblink_open dblink_fetch dblink_send_query dblink_get_result
  query_to_xml query_to_xml_and_xmlschema cursor_to_xml table_to_xml table_to_xml_and_xmlschema
  schema_to_xml schema_to_xml_and_xmlschema database_to_xml database_to_xml_and_xmlschema ts_stat ts_rewrite
  pg_stat_get_activity pg_stat_get_backend_activity pg_stat_statements`),
);

/** Split a parser funcname (["pg_catalog","lower"]) into schema and name. */
export function splitFunctionName(parts: string[]): { schema: string | null; name: string } {
  const name = parts[parts.length - 1] ?? '';
  const schema = parts.length >= 2 ? (parts[parts.length - 2] ?? null) : null;
  return { schema, name };
}

function isBuiltinSchema(schema: string | null): boolean {
  return schema === null || schema === 'pg_catalog';
}

/** Classify one function by its parser-resolved name. `set_config` is judged separately by its arguments.
 *  Reasons are full sentences naming the function, for denial messages. */
export function classifyFunction(schema: string | null, name: string): FunctionClass {
  const display = schema ? `${schema}.${name}` : name;
  const known = SIDE_EFFECTS.get(name);
  // dblink and friends usually live in public: their side effect is named whatever the schema.
  if (known && known.kind !== 'read') {
    return known.kind === 'forbidden'
      ? forbid(`function ${display} ${known.reason}`)
      : { kind: known.kind, reason: `function ${display} has side effects: it ${known.reason}` };
  }
  if (!isBuiltinSchema(schema)) {
    return write(`user-defined function ${display} cannot be proven read-only`);
  }
  if (READ_SAFE.has(name)) return { kind: 'read' };
  if (readSafeFamily(name)) return { kind: 'read' };
  return write(`function ${display} is not on the read-only allow-list (it cannot be proven read-only)`);
}

/**
 * A call the allow-lists know as PostgreSQL's own (by name, unqualified or in pg_catalog): a read-safe
 * built-in or one with a known side effect. Any other name may be a function a user created.
 */
export function isKnownBuiltin(schema: string | null, name: string): boolean {
  if (schema !== null && schema !== 'pg_catalog') return false;
  return READ_SAFE.has(name) || readSafeFamily(name) || SIDE_EFFECTS.has(name);
}

export function bypassesMasks(name: string): boolean {
  return MASK_BYPASS.has(name);
}

// ---- settings --------------------------------------------------------------------------------------

export type SettingRisk =
  | { kind: 'ok' }
  /** could lift the read-only guard or change identity: denied under read */
  | { kind: 'escape'; reason: string }
  /** needs admin */
  | { kind: 'admin'; reason: string }
  /** would make the server parse SQL differently from the policy's parser: denied at every level */
  | { kind: 'forbidden'; reason: string };

const TRUE_WORDS = new Set(['on', 'true', 'yes', '1', 't', 'y']);
/** PostgreSQL's names for UTF8 once it has cleaned them (lower case, letters and digits only). */
const UTF8_NAMES = new Set(['utf8', 'unicode']);

/** Does PostgreSQL read this encoding name as UTF8 ('UTF-8', 'utf_8', 'Unicode' …)? */
export function isUtf8EncodingName(name: string): boolean {
  return UTF8_NAMES.has(name.toLowerCase().replace(/[^a-z0-9]/g, ''));
}
const ADMIN_SETTINGS = new Set(
  words(`session_replication_role allow_system_table_mods zero_damaged_pages ignore_checksum_failure
  ignore_system_indexes ignore_invalid_pages lo_compat_privileges local_preload_libraries
  session_preload_libraries jit_provider`),
);

/**
 * Judge a change of one setting. `value` is the new value as text when it is a constant, `undefined` when
 * the setting is reset to its default or the value is not a constant (then the worst case is assumed).
 */
export function settingChangeRisk(rawName: string, value: string | undefined): SettingRisk {
  const name = rawName.toLowerCase();
  const v = value?.trim().toLowerCase();
  switch (name) {
    case 'default_transaction_read_only':
    case 'transaction_read_only':
      if (v !== undefined && TRUE_WORDS.has(v)) return { kind: 'ok' };
      return { kind: 'escape', reason: `changing ${name} could lift the read-only guard` };
    case 'role':
    case 'session_authorization':
      return { kind: 'escape', reason: `changing ${name} changes the identity the statements run as` };
    case 'client_encoding':
      if (v !== undefined && isUtf8EncodingName(v)) return { kind: 'ok' };
      return {
        kind: 'forbidden',
        reason: 'client_encoding other than UTF8 would make the server parse SQL differently from the policy',
      };
    case 'standard_conforming_strings':
      if (v !== undefined && TRUE_WORDS.has(v)) return { kind: 'ok' };
      return {
        kind: 'forbidden',
        reason: 'standard_conforming_strings off would make the server parse SQL differently from the policy',
      };
    case 'search_path': {
      // pg_catalog is searched first unless listed later: then a user function could shadow a built-in
      // on the read allow-list.
      const schemas = (v ?? '').split(',').map((x) => x.trim().replace(/^"|"$/g, ''));
      if (schemas.indexOf('pg_catalog') > 0) {
        return {
          kind: 'escape',
          reason: 'a search_path with pg_catalog after other schemas lets functions shadow built-ins',
        };
      }
      return { kind: 'ok' };
    }
    default:
      if (ADMIN_SETTINGS.has(name)) return { kind: 'admin', reason: `setting ${name} needs admin` };
      return { kind: 'ok' };
  }
}
