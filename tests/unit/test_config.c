/* test_config.c - smp-milter.conf parsing (lib/smp_config.c) */
#include "test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <syslog.h>
#include <unistd.h>

#include "smp_config.h"

static char dir[] = "/tmp/smp-test-config-XXXXXX";

static char *write_conf(const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/t.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static struct smp_config *load(const char *text, char *err, size_t n)
{
	return smp_config_load(write_conf(text), err, n);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char path[300];
	(void)state;
	snprintf(path, sizeof(path), "%s/t.conf", dir);
	unlink(path);
	rmdir(dir);
	return 0;
}

static void test_empty_file_gives_defaults(void **state)
{
	char err[512];
	struct smp_config *c = load("", err, sizeof(err));
	(void)state;
	assert_non_null(c);
	assert_string_equal(c->socket, "unix:/run/smp-milter/smp-milter.sock");
	assert_string_equal(c->user, "smp-milter");
	assert_int_equal(c->socket_mode, 0660);
	assert_int_equal(c->log_level, LOG_INFO);
	assert_int_equal(c->on_invalid, SMP_ON_INVALID_TAG);
	assert_int_equal(c->on_error, SMP_ON_ERROR_TEMPFAIL);
	assert_int_equal(c->check.match, SMP_MATCH_EXACT);
	assert_int_equal(c->check.limits.max_message_bytes, 25 * 1024 * 1024);
	assert_int_equal(c->check.limits.max_parts, 100);
	assert_int_equal(c->n_out_nets, 2);
	assert_string_equal(c->keyring_backend, "sqlite");
	assert_int_equal(c->keyring_events_keep, 400);
	assert_true(c->harvest_smp);
	assert_false(c->harvest_autocrypt);
	assert_int_equal(c->on_conflict, SMP_CONF_CONFLICT_FLAG);
	assert_int_equal(c->replay_window, 7 * 86400);
	assert_int_equal(c->replay_action, SMP_CONF_REPLAY_TAG);
	smp_config_free(c);
}

static void test_values(void **state)
{
	char err[512];
	struct smp_config *c = load(
		"socket = \"inet:8890@127.0.0.1\"\n"
		"on_invalid = reject\non_error = accept\nlog_level = debug\n"
		"socket_mode = \"0600\"\n"
		"detect {\n subject_match = caseless\n}\n"
		"limits {\n max_message_bytes = 1000\n max_keys = 2\n}\n"
		"outbound {\n networks = {\"10.0.0.0/8\", \"2001:db8::/32\"}\n"
		" daemons = {submission}\n domains = {corp.example}\n}\n"
		"harvest {\n sources = {smp, autocrypt, pgp-keys}\n on_conflict = replace\n"
		" require_auth = dmarc\n authserv_id = mx.corp.example\n}\n"
		"replay {\n window = 12h\n action = invalid\n}\n",
		err, sizeof(err));
	(void)state;
	assert_non_null(c);
	assert_string_equal(c->socket, "inet:8890@127.0.0.1");
	assert_int_equal(c->on_invalid, SMP_ON_INVALID_REJECT);
	assert_int_equal(c->on_error, SMP_ON_ERROR_ACCEPT);
	assert_int_equal(c->log_level, LOG_DEBUG);
	assert_int_equal(c->socket_mode, 0600);
	assert_int_equal(c->check.match, SMP_MATCH_CASELESS);
	assert_int_equal(c->check.limits.max_message_bytes, 1000);
	assert_int_equal(c->check.limits.max_keys, 2);
	assert_int_equal(c->n_out_nets, 2);
	assert_true(smp_config_outbound_daemon(c, "submission"));
	assert_false(smp_config_outbound_daemon(c, "smtpd"));
	assert_false(smp_config_outbound_daemon(c, NULL));
	/* skip_domains defaults to outbound.domains */
	assert_int_equal(c->skip_domains.n, 1);
	assert_string_equal(c->skip_domains.v[0], "corp.example");
	assert_true(c->harvest_autocrypt && c->harvest_pgp_keys);
	assert_int_equal(c->on_conflict, SMP_CONF_CONFLICT_REPLACE);
	assert_int_equal(c->require_auth, SMP_CONF_AUTH_DMARC);
	assert_string_equal(c->authserv_id, "mx.corp.example");
	assert_int_equal(c->replay_window, 12 * 3600);
	assert_int_equal(c->replay_action, SMP_CONF_REPLAY_INVALID);
	smp_config_free(c);
}

static void test_outbound_networks(void **state)
{
	char err[512];
	struct sockaddr_in a4 = {.sin_family = AF_INET};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
	struct smp_config *c = load(
		"outbound {\n networks = {\"192.0.2.0/25\", \"2001:db8::/33\", \"198.51.100.7\"}\n}\n",
		err, sizeof(err));
	(void)state;
	assert_non_null(c);
	inet_pton(AF_INET, "192.0.2.127", &a4.sin_addr);
	assert_true(smp_config_outbound_addr(c, (struct sockaddr *)&a4));
	inet_pton(AF_INET, "192.0.2.128", &a4.sin_addr);
	assert_false(smp_config_outbound_addr(c, (struct sockaddr *)&a4));
	inet_pton(AF_INET, "198.51.100.7", &a4.sin_addr);
	assert_true(smp_config_outbound_addr(c, (struct sockaddr *)&a4));
	inet_pton(AF_INET, "198.51.100.8", &a4.sin_addr);
	assert_false(smp_config_outbound_addr(c, (struct sockaddr *)&a4));
	inet_pton(AF_INET6, "2001:db8:7fff::1", &a6.sin6_addr);
	assert_true(smp_config_outbound_addr(c, (struct sockaddr *)&a6));
	inet_pton(AF_INET6, "2001:db8:8000::1", &a6.sin6_addr);
	assert_false(smp_config_outbound_addr(c, (struct sockaddr *)&a6));
	/* an IPv4-mapped IPv6 client is matched as IPv4 */
	inet_pton(AF_INET6, "::ffff:192.0.2.1", &a6.sin6_addr);
	assert_true(smp_config_outbound_addr(c, (struct sockaddr *)&a6));
	assert_false(smp_config_outbound_addr(c, NULL));
	smp_config_free(c);
}

static void expect_error(const char *text, const char *want)
{
	char err[512] = "";
	struct smp_config *c = load(text, err, sizeof(err));
	assert_null(c);
	if (!strstr(err, want))
		fail_msg("config '%s': error '%s' lacks '%s'", text, err, want);
}

static void test_errors_name_file_and_line(void **state)
{
	char want[300];
	(void)state;
	snprintf(want, sizeof(want), "%s/t.conf:1: no such option 'bogus'", dir);
	expect_error("bogus = 1\n", want);
	snprintf(want, sizeof(want), "%s/t.conf:3: on_invalid: 'drop'", dir);
	expect_error("\n\non_invalid = drop\n", want);
	snprintf(want, sizeof(want), "%s/t.conf:2: window", dir);
	expect_error("replay {\n window = 7y\n}\n", want);
	expect_error("outbound {\n networks = {\"10.1.2.3/33\"}\n}\n", "networks: '10.1.2.3/33'");
	expect_error("outbound {\n domains = {\"a@b\"}\n}\n", "domains: 'a@b'");
	expect_error("harvest {\n sources = {smtp}\n}\n", "sources: 'smtp'");
	expect_error("harvest {\n on_conflict = merge\n}\n", "on_conflict: 'merge'");
	expect_error("keyring {\n backend = mysql\n}\n", "backend: 'mysql'");
	expect_error("limits {\n max_depth = -1\n}\n", "max_depth");
	expect_error("socket = \"inet6:0@::1\"\n", "socket");
}

/* keyring.events_keep: days, 0 keeps every event, at most 36500. */
static void test_events_keep(void **state)
{
	static const struct {
		const char *v;
		long days;
	} good[] = {{"0", 0}, {"1", 1}, {"30", 30}, {"400", 400}, {"36500", 36500}};
	static const char *const bad[] = {"-1", "36501", "1d", "1.5", "\"\"",
					  "99999999999999999999"};
	char text[128], want[300], err[512];
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct smp_config *c;
		snprintf(text, sizeof(text), "keyring {\n events_keep = %s\n}\n",
			 good[i].v);
		c = load(text, err, sizeof(err));
		if (!c)
			fail_msg("events_keep = %s: %s", good[i].v, err);
		assert_int_equal(c->keyring_events_keep, good[i].days);
		smp_config_free(c);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "\nkeyring {\n events_keep = %s\n}\n",
			 bad[i]);
		snprintf(want, sizeof(want), "%s/t.conf:3: events_keep: ", dir);
		expect_error(text, want);
		expect_error(text, "is not a number of days from 0 (keep every "
			     "event) to 36500");
	}
}

static void test_encrypt_defaults(void **state)
{
	char err[512];
	struct smp_config *c = load("", err, sizeof(err));
	(void)state;
	assert_non_null(c);
	assert_int_equal(c->encrypt_default, SMP_ENC_OFF);
	assert_false(c->encrypt_protect_subject);
	assert_int_equal(c->encrypt_required_action, SMP_CONF_REQUIRED_REJECT);
	assert_false(c->encrypt_split_recipients);
	assert_int_equal(c->encrypt_archive_keys.n, 0);
	assert_non_null(c->encrypt_policy);
	assert_int_equal(smp_policy_nrules(c->encrypt_policy), 0);
	assert_false(c->encrypt_any);
	assert_int_equal(smp_policy_for(c->encrypt_policy, "bob@example.net"), SMP_ENC_OFF);
	smp_config_free(c);
	c = smp_config_defaults();
	assert_non_null(c);
	assert_false(c->encrypt_any);
	smp_config_free(c);
}

static void test_encrypt_values(void **state)
{
	char err[512];
	struct smp_config *c = load(
		"encrypt {\n"
		"  default = opportunistic\n"
		"  protect_subject = yes\n"
		"  required_action = tempfail\n"
		"  split_recipients = true\n"
		"  archive_keys = {\"0123456789abcdef0123456789ABCDEF01234567\"}\n"
		"  policy \"example.net\" {\n    encrypt = required\n  }\n"
		"  policy \".corp.example\" { encrypt = required }\n"
		"  policy \"bob@example.net\" { encrypt = off }\n"
		"}\n", err, sizeof(err));
	(void)state;
	if (!c)
		fail_msg("%s", err);
	assert_int_equal(c->encrypt_default, SMP_ENC_OPPORTUNISTIC);
	assert_true(c->encrypt_protect_subject);
	assert_int_equal(c->encrypt_required_action, SMP_CONF_REQUIRED_TEMPFAIL);
	assert_true(c->encrypt_split_recipients);
	assert_int_equal(c->encrypt_archive_keys.n, 1);
	assert_string_equal(c->encrypt_archive_keys.v[0],
			    "0123456789ABCDEF0123456789ABCDEF01234567");
	assert_true(c->encrypt_any);
	assert_int_equal(smp_policy_nrules(c->encrypt_policy), 3);
	assert_int_equal(smp_policy_for(c->encrypt_policy, "carol@example.net"),
			 SMP_ENC_REQUIRED);
	assert_int_equal(smp_policy_for(c->encrypt_policy, "bob@EXAMPLE.NET"), SMP_ENC_OFF);
	assert_int_equal(smp_policy_for(c->encrypt_policy, "x@mx.corp.example"),
			 SMP_ENC_REQUIRED);
	assert_int_equal(smp_policy_for(c->encrypt_policy, "x@other.example"),
			 SMP_ENC_OPPORTUNISTIC);
	smp_config_free(c);

	/* default off, but a rule that is not off: encryption may apply */
	c = load("encrypt {\n policy \"example.org\" { encrypt = opportunistic }\n}\n",
		 err, sizeof(err));
	assert_non_null(c);
	assert_true(c->encrypt_any);
	smp_config_free(c);
	/* only off rules: nothing to do */
	c = load("encrypt {\n policy \"example.org\" { encrypt = off }\n}\n",
		 err, sizeof(err));
	assert_non_null(c);
	assert_false(c->encrypt_any);
	smp_config_free(c);
}

static void test_encrypt_errors(void **state)
{
	char want[300];
	(void)state;
	snprintf(want, sizeof(want), "%s/t.conf:2: default: 'sometimes'", dir);
	expect_error("encrypt {\n default = sometimes\n}\n", want);
	snprintf(want, sizeof(want), "%s/t.conf:3: required_action: 'bounce'", dir);
	expect_error("encrypt {\n\n required_action = bounce\n}\n", want);
	snprintf(want, sizeof(want), "%s/t.conf:2: archive_keys: 'ABCD'", dir);
	expect_error("encrypt {\n archive_keys = {\"ABCD\"}\n}\n", want);
	expect_error("encrypt {\n archive_keys = {\"0123456789abcdef0123456789ABCDEF0123456g\"}\n}\n",
		     "archive_keys");
	expect_error("encrypt {\n protect_subject = maybe\n}\n", "protect_subject");
	snprintf(want, sizeof(want), "%s/t.conf:3: encrypt: 'always'", dir);
	expect_error("encrypt {\n policy \"a.example\" {\n  encrypt = always\n }\n}\n", want);
	snprintf(want, sizeof(want), "%s/t.conf:3: policy \"a.example\": no encrypt", dir);
	expect_error("encrypt {\n policy \"a.example\" {\n }\n}\n", want);
	expect_error("encrypt {\n policy \"not a domain\" { encrypt = required }\n}\n",
		     "policy \"not a domain\": not a domain");
	expect_error("encrypt {\n policy \"@\" { encrypt = required }\n}\n",
		     "policy \"@\"");
	expect_error("encrypt {\n policy \"bob@\" { encrypt = required }\n}\n",
		     "policy \"bob@\"");
	/* the same domain twice, spelt differently */
	snprintf(want, sizeof(want),
		 "%s/t.conf:3: policy \"A.Example\": a second rule for the same", dir);
	expect_error("encrypt {\n policy \"a.example\" { encrypt = off }\n"
		     " policy \"A.Example\" { encrypt = required }\n}\n", want);
	/* the same title twice */
	expect_error("encrypt {\n policy \"a.example\" { encrypt = off }\n"
		     " policy \"a.example\" { encrypt = required }\n}\n", "a.example");
}

static void test_socket_specs(void **state)
{
	(void)state;
	assert_true(smp_socket_spec_valid("unix:/run/x.sock"));
	assert_true(smp_socket_spec_valid("local:/run/x.sock"));
	assert_true(smp_socket_spec_valid("/run/x.sock"));
	assert_true(smp_socket_spec_valid("inet:8890@127.0.0.1"));
	assert_true(smp_socket_spec_valid("inet:8890"));
	assert_true(smp_socket_spec_valid("inet6:8890@::1"));
	assert_false(smp_socket_spec_valid("unix:relative.sock"));
	assert_false(smp_socket_spec_valid("inet:65536@127.0.0.1"));
	assert_false(smp_socket_spec_valid("inet:@127.0.0.1"));
	assert_false(smp_socket_spec_valid("inet:25@"));
	assert_false(smp_socket_spec_valid("tcp:25"));
	assert_false(smp_socket_spec_valid(""));
}

static void test_missing_file(void **state)
{
	char err[512];
	(void)state;
	assert_null(smp_config_load("/nonexistent/smp.conf", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/smp.conf: cannot read the file"));
}

static void test_discovery_defaults(void **state)
{
	char err[512];
	struct smp_config *c = load("", err, sizeof(err));
	struct smp_disc_methods m;
	struct smp_disc_net_config nc;
	(void)state;
	assert_non_null(c);
	assert_int_equal(c->disc.methods.n, 2);
	assert_int_equal(c->disc.methods.m[0], SMP_DISC_WKD);
	assert_int_equal(c->disc.methods.m[1], SMP_DISC_DANE);
	assert_int_equal(c->disc.timeout_ms, 5000);
	assert_false(c->disc.on_error_tempfail);
	assert_int_equal(c->disc.positive_ttl, 86400);
	assert_int_equal(c->disc.negative_ttl, 3600);
	assert_int_equal(c->disc.error_ttl, 60);
	assert_int_equal(c->disc.refresh_per_minute, 60);
	assert_int_equal(c->disc_https_port, 443);
	assert_false(c->disc_any); /* encrypt.default off: nothing to look up */
	smp_config_disc_methods(c, "a@example.org", &m);
	assert_int_equal(m.n, 2);
	smp_config_disc_net(c, &nc);
	assert_string_equal(nc.dns_trust_anchor_file, "/usr/share/dns/root.key");
	assert_int_equal(nc.n_dns_forwarders, 0);
	assert_int_equal(nc.max_bytes, c->check.limits.max_key_bytes);
	smp_config_free(c);
}

static void test_discovery_values(void **state)
{
	char err[512] = "";
	struct smp_config *c = load(
		"encrypt { default = opportunistic\n"
		"  policy \"dane.example\" { encrypt = required\n discovery = {dane} }\n"
		"  policy \"none.example\" { encrypt = required\n discovery = {off} }\n"
		"  policy \"x@dane.example\" { encrypt = required }\n"
		"  policy \".sub.example\" { encrypt = opportunistic\n discovery = {dane, wkd} }\n"
		"}\n"
		"discovery { methods = {wkd}\n timeout = 2\n on_error = tempfail\n"
		"  positive_ttl = 2h\n negative_ttl = 10m\n error_ttl = 30\n"
		"  refresh_per_minute = 5\n ca_file = \"/tmp/ca.pem\"\n https_port = 8443\n"
		"  dns_forwarders = {\"127.0.0.1@5353\"}\n dns_trust_anchor_file = \"\"\n"
		"  dns_trust_anchors = {\"example. DS 1 13 2 AB\"} }\n", err, sizeof(err));
	struct smp_disc_methods m;
	struct smp_disc_net_config nc;
	(void)state;
	if (!c)
		fail_msg("%s", err);
	assert_true(c->disc_any);
	assert_int_equal(c->disc.timeout_ms, 2000);
	assert_true(c->disc.on_error_tempfail);
	assert_int_equal(c->disc.positive_ttl, 7200);
	assert_int_equal(c->disc.negative_ttl, 600);
	assert_int_equal(c->disc.error_ttl, 30);
	assert_int_equal(c->disc.refresh_per_minute, 5);
	/* the global list, a domain's own, off, an address rule without
	 * one (global), and a subdomain rule's order */
	smp_config_disc_methods(c, "a@other.example", &m);
	assert_int_equal(m.n, 1);
	assert_int_equal(m.m[0], SMP_DISC_WKD);
	smp_config_disc_methods(c, "a@dane.example", &m);
	assert_int_equal(m.n, 1);
	assert_int_equal(m.m[0], SMP_DISC_DANE);
	smp_config_disc_methods(c, "a@none.example", &m);
	assert_int_equal(m.n, 0);
	smp_config_disc_methods(c, "x@dane.example", &m);
	assert_int_equal(m.n, 1);
	assert_int_equal(m.m[0], SMP_DISC_WKD);
	smp_config_disc_methods(c, "a@b.sub.example", &m);
	assert_int_equal(m.n, 2);
	assert_int_equal(m.m[0], SMP_DISC_DANE);
	assert_int_equal(m.m[1], SMP_DISC_WKD);
	smp_config_disc_net(c, &nc);
	assert_string_equal(nc.ca_file, "/tmp/ca.pem");
	assert_int_equal(nc.https_port, 8443);
	assert_int_equal(nc.n_dns_forwarders, 1);
	assert_string_equal(nc.dns_forwarders[0], "127.0.0.1@5353");
	assert_string_equal(nc.dns_trust_anchor_file, "");
	assert_int_equal(nc.n_dns_trust_anchors, 1);
	smp_config_free(c);

	c = load("encrypt { default = required }\ndiscovery { methods = {off} }\n",
		 err, sizeof(err));
	assert_non_null(c);
	assert_false(c->disc_any);
	smp_config_free(c);
}

static void test_discovery_errors(void **state)
{
	(void)state;
	expect_error("discovery { methods = {ldap} }\n", "'ldap' is not one of wkd, dane, off");
	expect_error("discovery { methods = {wkd, off} }\n", "'off' cannot stand beside");
	expect_error("discovery { timeout = soon }\n", "timeout");
	expect_error("discovery { on_error = bounce }\n", "on_error");
	expect_error("discovery { https_port = 70000 }\n", "not a port number");
	expect_error("discovery { ca_file = \"ca.pem\" }\n", "not an absolute path");
	expect_error("encrypt { policy \"a.example\" { encrypt = required\n"
		     "discovery = {finger} } }\n", "'finger' is not one of");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_file_gives_defaults),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_outbound_networks),
		cmocka_unit_test(test_errors_name_file_and_line),
		cmocka_unit_test(test_events_keep),
		cmocka_unit_test(test_encrypt_defaults),
		cmocka_unit_test(test_encrypt_values),
		cmocka_unit_test(test_encrypt_errors),
		cmocka_unit_test(test_socket_specs),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_discovery_defaults),
		cmocka_unit_test(test_discovery_values),
		cmocka_unit_test(test_discovery_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
