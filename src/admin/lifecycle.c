/*-------------------------------------------------------------------------
 *
 * lifecycle.c
 *		Settings of the lifecycle reminders that pixl_lifecycle_reminders()
 *		(SQL, schema/code/35_lifecycle.sql) sends as NOTIFY pixltoken, and
 *		of the expiring_soon figure of pixl_token_hygiene (85_hygiene.sql).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"

#include "admin/lifecycle.h"

static int	expiry_reminder_min = 7 * 24 * 60;
static int	rotation_reminder_min = 90 * 24 * 60;
static int	expiring_soon_min = 30 * 24 * 60;

void
pixl_lifecycle_init(void)
{
	DefineCustomIntVariable("pixltoken.expiry_reminder",
							"How long before a token expires the 'expiring' event is sent; 0 sends none.",
							"Sent once per token and expiry by pixl_lifecycle_reminders().",
							&expiry_reminder_min,
							7 * 24 * 60, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MIN,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pixltoken.rotation_reminder",
							"Age of a secret (since creation or the last rotation) at which the 'rotation_due' event is sent; 0 sends none.",
							"Sent once per secret by pixl_lifecycle_reminders().",
							&rotation_reminder_min,
							90 * 24 * 60, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MIN,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pixltoken.expiring_soon",
							"How close to its expiry a token counts as expiring soon in pixl_token_hygiene.",
							NULL,
							&expiring_soon_min,
							30 * 24 * 60, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MIN,
							NULL, NULL, NULL);
}
