/* push: the payload sent to an existing host, a tar in an anonymous memory file (push.h). */
#include <archive.h>
#include <archive_entry.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "push.h"

int push_elf_machine(const char *path, char *out, size_t len, struct tuap_err *err)
{
	static const struct {
		unsigned machine;
		const char *name;
	} known[] = {
		{EM_X86_64, "x86_64"}, {EM_AARCH64, "aarch64"}, {EM_386, "i686"},
		{EM_ARM, "armv7l"},    {EM_RISCV, "riscv64"},	{EM_PPC64, "ppc64le"},
		{EM_S390, "s390x"},
	};
	unsigned char h[EI_NIDENT + 4];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	unsigned m;

	if (fd < 0)
		return err_set(err, "agent_binary %s: %s", path, strerror(errno));
	n = read(fd, h, sizeof(h));
	close(fd);
	if (n != (ssize_t)sizeof(h) || memcmp(h, ELFMAG, SELFMAG))
		return err_set(err, "agent_binary %s is not an ELF executable", path);
	/* e_machine follows e_type, right after e_ident, in the file's byte order */
	m = h[EI_DATA] == ELFDATA2MSB ? (unsigned)h[EI_NIDENT + 2] << 8 | h[EI_NIDENT + 3]
				      : (unsigned)h[EI_NIDENT + 3] << 8 | h[EI_NIDENT + 2];
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (known[i].machine == m) {
			snprintf(out, len, "%s", known[i].name);
			return 0;
		}
	return err_set(err, "agent_binary %s: ELF machine %u is not one tuap knows", path, m);
}

static int add_entry(struct archive *a, const char *name, unsigned mode, size_t size,
		     struct tuap_err *err)
{
	struct archive_entry *e = archive_entry_new();
	int rc;

	if (!e)
		return err_set(err, "out of memory");
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, mode);
	archive_entry_set_size(e, (la_int64_t)size);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_mtime(e, 0, 0);
	rc = archive_write_header(a, e);
	archive_entry_free(e);
	if (rc != ARCHIVE_OK)
		return err_set(err, "payload: %s: %s", name, archive_error_string(a));
	return 0;
}

static int add_data(struct archive *a, const char *name, unsigned mode, const void *data,
		    size_t len, struct tuap_err *err)
{
	if (add_entry(a, name, mode, len, err) < 0)
		return -1;
	if (len && archive_write_data(a, data, len) != (la_ssize_t)len)
		return err_set(err, "payload: %s: %s", name, archive_error_string(a));
	return 0;
}

/* Streams the agent binary into the archive in blocks: it may be tens of MB. */
static int add_file(struct archive *a, const char *name, const char *path, struct tuap_err *err)
{
	char block[64 << 10];
	struct stat st;
	off_t left;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;

	if (fd < 0 || fstat(fd, &st) < 0) {
		err_set(err, "agent_binary %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)PUSH_AGENT_MAX) {
		err_set(err, "agent_binary %s is not a regular file of at most %u MiB", path,
			PUSH_AGENT_MAX >> 20);
		goto out;
	}
	if (add_entry(a, name, 0755, (size_t)st.st_size, err) < 0)
		goto out;
	for (left = st.st_size; left > 0;) {
		ssize_t n =
			read(fd, block, left < (off_t)sizeof(block) ? (size_t)left : sizeof(block));

		if (n <= 0) {
			err_set(err, "agent_binary %s: short read", path);
			goto out;
		}
		if (archive_write_data(a, block, (size_t)n) != n) {
			err_set(err, "payload: %s", archive_error_string(a));
			goto out;
		}
		left -= n;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

int push_payload(const char *agent_binary, const char *conf_text, size_t conf_len,
		 struct tuap_err *err)
{
	char machine[32];
	struct archive *a = NULL;
	/* in memory only: the config holds the agent's secret key, which must not land on
	 * tuapd's disk */
	int fd = memfd_create("tuap-push", MFD_CLOEXEC), rc = -1;

	if (fd < 0)
		return err_set(err, "memfd_create: %s", strerror(errno));
	if (push_elf_machine(agent_binary, machine, sizeof(machine) - 1, err) < 0)
		goto out;
	strcat(machine, "\n");
	if (!(a = archive_write_new()) || archive_write_set_format_ustar(a) != ARCHIVE_OK ||
	    archive_write_open_fd(a, fd) != ARCHIVE_OK) {
		err_set(err, "payload: %s", a ? archive_error_string(a) : "out of memory");
		goto out;
	}
	for (size_t i = 0; i < push_n_files; i++)
		if (add_data(a, push_files[i].name, push_files[i].mode, push_files[i].data,
			     push_files[i].len, err) < 0)
			goto out;
	if (add_data(a, "machine", 0644, machine, strlen(machine), err) < 0 ||
	    add_data(a, "agent.conf", 0600, conf_text, conf_len, err) < 0 ||
	    add_file(a, "tuap-agent", agent_binary, err) < 0)
		goto out;
	if (archive_write_close(a) != ARCHIVE_OK) {
		err_set(err, "payload: %s", archive_error_string(a));
		goto out;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		err_set(err, "payload: %s", strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (a)
		archive_write_free(a);
	if (rc < 0) {
		close(fd);
		return -1;
	}
	return fd;
}
