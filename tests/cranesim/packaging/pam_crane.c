/* cranesim's pam_crane.so: a real PAM module (account and session) that decides as
 * CraneSched's src/Misc/Pam does. The decision itself is made by the simulator's helper
 * (a Python program of the craned package), which reads config.yaml and asks the simulated
 * craned over its PAM unix socket; this file only does what must happen inside the PAM
 * stack: root is let in without asking, everything else follows the helper's exit code.
 *
 * Helper exit codes: 0 the user has a job here (stdout: its id), 1 no job (or craned did not
 * answer), 2 the config could not be read (CraneSched then lets only root in). */
#define PAM_SM_ACCOUNT
#define PAM_SM_SESSION
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#ifndef HELPER
#define HELPER "/usr/lib/cranesim/craned/pam_crane_helper"
#endif
#define AUTH_RESULT "AUTH_RES"
#define TASK_ID "TASK_ID"
#define REJECTED                                                 \
  "You don't have any active job on this node. Your SSH request " \
  "was rejected by Crane PAM Module."

static const char *config_path(int argc, const char **argv) {
  for (int i = 0; i < argc; i++)
    if (strncmp(argv[i], "config_path=", 12) == 0) return argv[i] + 12;
  return "/etc/crane/config.yaml";
}

static void free_data(pam_handle_t *pamh, void *data, int status) {
  (void)pamh;
  (void)status;
  free(data);
}

/* Run the helper; its exit code, or -1. The job id it prints goes to job_id. */
static int ask_helper(const char *phase, const char *config, const char *uid,
                      const char *rhost, const char *job, char *job_id, size_t len) {
  int out[2];
  if (pipe(out) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    execl(HELPER, HELPER, phase, config, uid, rhost, job, (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  ssize_t got = read(out[0], job_id, len - 1);
  job_id[got > 0 ? got : 0] = '\0';
  job_id[strcspn(job_id, "\n")] = '\0';
  close(out[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int user_of(pam_handle_t *pamh, const char **user, char *uid, size_t len) {
  if (pam_get_user(pamh, user, NULL) != PAM_SUCCESS || *user == NULL) return 0;
  if (uid == NULL) return 1;
  struct passwd *pw = getpwnam(*user);
  if (pw == NULL) return -1;
  snprintf(uid, len, "%u", (unsigned)pw->pw_uid);
  return 1;
}

PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc,
                                const char **argv) {
  (void)flags;
  const char *user;
  char uid[32], job_id[64];
  int known = user_of(pamh, &user, uid, sizeof uid);
  if (known == 0) {
    pam_syslog(pamh, LOG_ERR, "[Crane] Failed to get username");
    return PAM_SESSION_ERR;
  }
  if (strcmp(user, "root") == 0) {
    pam_syslog(pamh, LOG_ERR, "[Crane] Allow root to log in");
    return PAM_SUCCESS;
  }
  if (known < 0) return PAM_USER_UNKNOWN;
  const void *rhost = NULL;
  pam_get_item(pamh, PAM_RHOST, &rhost);
  int rc = ask_helper("account", config_path(argc, argv), uid,
                      rhost ? (const char *)rhost : "", "", job_id, sizeof job_id);
  if (rc == 2) {
    pam_syslog(pamh, LOG_ERR,
               "[Crane] Pam module failed to read configuration. Only root is allowed.");
    return PAM_SESSION_ERR;
  }
  if (rc == 0) {
    pam_syslog(pamh, LOG_ERR, "[Crane] Accepted ssh connection of uid %s (job #%s)", uid,
               job_id);
    pam_set_data(pamh, AUTH_RESULT, strdup("T"), free_data);
    pam_set_data(pamh, TASK_ID, strdup(job_id), free_data);
    return PAM_SUCCESS;
  }
  pam_set_data(pamh, AUTH_RESULT, strdup("F"), free_data);
  pam_syslog(pamh, LOG_ERR, "[Crane] Rejected ssh connection of uid %s", uid);
  pam_info(pamh, "%s", REJECTED);
  return PAM_PERM_DENIED;
}

PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc,
                                   const char **argv) {
  (void)flags;
  const char *user;
  const void *result = NULL, *task = NULL;
  char job_id[64];
  if (!user_of(pamh, &user, NULL, 0)) {
    pam_syslog(pamh, LOG_ERR, "[Crane] Failed to get username");
    return PAM_SESSION_ERR;
  }
  if (strcmp(user, "root") == 0) return PAM_SUCCESS;
  if (pam_get_data(pamh, AUTH_RESULT, &result) != PAM_SUCCESS || result == NULL ||
      strcmp((const char *)result, "T") != 0)
    return PAM_SUCCESS; /* an admin let a user without a job in: pass, as CraneSched does */
  pam_get_data(pamh, TASK_ID, &task);
  int rc = ask_helper("session", config_path(argc, argv), "", "",
                      task ? (const char *)task : "", job_id, sizeof job_id);
  if (rc == 2) return PAM_SESSION_ERR;
  if (rc == 0) return PAM_SUCCESS;
  pam_info(pamh, "%s", REJECTED);
  return PAM_SESSION_ERR;
}

PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc,
                                    const char **argv) {
  (void)pamh;
  (void)flags;
  (void)argc;
  (void)argv;
  return PAM_IGNORE;
}
